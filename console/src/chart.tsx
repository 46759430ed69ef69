/** A small line chart, one line per series, drawn as SVG (no style attributes: the policy allows none). */

export interface Series {
  name: string;
  points: readonly { at: number; value: number | undefined }[];
}

const WIDTH = 480;
const HEIGHT = 160;
const PAD = { left: 44, right: 8, top: 8, bottom: 20 };

export function LineChart({ title, unit, series, windowMs }: { title: string; unit: string; series: readonly Series[]; windowMs: number }) {
  const now = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.at)));
  const start = now - windowMs;
  const values = series.flatMap((s) => s.points.map((p) => p.value ?? 0));
  const top = niceCeiling(Math.max(1e-9, ...values));
  const x = (at: number) => PAD.left + ((at - start) / windowMs) * (WIDTH - PAD.left - PAD.right);
  const y = (value: number) => HEIGHT - PAD.bottom - (value / top) * (HEIGHT - PAD.top - PAD.bottom);
  const latest = series.map((s) => ({ name: s.name, value: [...s.points].reverse().find((p) => p.value !== undefined)?.value }));
  const summary = latest.map((l) => `${l.name}: ${l.value === undefined ? 'no calls' : `${format(l.value)} ${unit}`}`).join('; ');
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={`${title}. Latest: ${summary || 'no data yet'}`}>
        <line class="axis" x1={PAD.left} y1={HEIGHT - PAD.bottom} x2={WIDTH - PAD.right} y2={HEIGHT - PAD.bottom} />
        <line class="axis" x1={PAD.left} y1={PAD.top} x2={PAD.left} y2={HEIGHT - PAD.bottom} />
        <text class="tick" x={PAD.left - 4} y={PAD.top + 8} text-anchor="end">
          {format(top)}
        </text>
        <text class="tick" x={PAD.left - 4} y={HEIGHT - PAD.bottom} text-anchor="end">
          0
        </text>
        <text class="tick" x={WIDTH - PAD.right} y={HEIGHT - 4} text-anchor="end">
          now
        </text>
        <text class="tick" x={PAD.left} y={HEIGHT - 4}>
          −{Math.round(windowMs / 1000)} s
        </text>
        {series.map((s, index) => {
          const points = s.points.filter((p) => p.at >= start && p.value !== undefined).map((p) => `${x(p.at).toFixed(1)},${y(p.value!).toFixed(1)}`);
          return points.length ? <polyline key={s.name} class={`series series-${index % 8}`} points={points.join(' ')} /> : null;
        })}
      </svg>
      <ul class="legend">
        {latest.map((l, index) => (
          <li key={l.name}>
            <span class={`swatch series-${index % 8}`} aria-hidden="true" />
            {l.name}: {l.value === undefined ? 'no calls' : `${format(l.value)} ${unit}`}
          </li>
        ))}
      </ul>
    </figure>
  );
}

function niceCeiling(value: number): number {
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function format(value: number): string {
  if (value === 0) return '0';
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}
