/**
 * Words that mark the line of a crash worth showing: `Error: boom` of a Node stack, the last
 * `ValueError: ...` of a Python traceback, a system call's code, a Go panic.
 */
const ERROR_LINE = /Error|error:|Exception|Traceback|ENOENT|EACCES|EADDRINUSE|ECONNREFUSED|\bfatal\b|\bFATAL\b|panic:|npm ERR!/;

/**
 * Lines of a trace that name code rather than the failure: Node's `at fn (file:1:2)` frames
 * and its `^` marker, Python's `File "x.py", line 3`. They often contain "Error" in a path
 * or function name, and would otherwise win for being last.
 */
const FRAME_LINE = /^\s+at\s|^\s*\^+\s*$|^\s+File "/;

/** The version line Node prints after an uncaught exception. */
const RUNTIME_TRAILER = /^Node\.js v\d/;

/**
 * The one stderr line that best explains why a process ended: the last line that reads like an
 * error and starts at the margin (Node's `Error: ENOENT: ...` rather than the `code: 'ENOENT'`
 * of the object printed after its stack, Python's exception rather than its source lines),
 * else the last such line indented but not a stack frame, else the last non-empty line. A
 * crashing Node process ends its stderr with `Node.js v20.x`, so "the last line" alone would
 * name the runtime, not the failure.
 */
export function meaningfulStderrLine(lines: readonly string[]): string | undefined {
  const found =
    lastLine(lines, (line) => ERROR_LINE.test(line) && !/^\s/.test(line)) ??
    lastLine(lines, (line) => ERROR_LINE.test(line) && !FRAME_LINE.test(line)) ??
    lastLine(lines, (line) => line.trim() !== '' && !RUNTIME_TRAILER.test(line.trim()));
  return found?.trim();
}

function lastLine(lines: readonly string[], matches: (line: string) => boolean): string | undefined {
  for (let i = lines.length - 1; i >= 0; i--) if (matches(lines[i]!)) return lines[i];
  return undefined;
}
