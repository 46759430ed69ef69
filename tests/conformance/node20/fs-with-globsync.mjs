// node:fs as it is, plus `globSync`, which Node 20 lacks. The conformance CLI imports it at
// load time but calls it only from `tier-check`, which Conflux does not run.
import fs from 'node:fs';
export * from 'node:fs';
export default fs;
export const globSync =
  fs.globSync ??
  (() => {
    throw new Error('fs.globSync is not available on this Node version');
  });
