// Preloaded into a `silt` CLI process by test/cli/cli.test.ts (node --import): the Nth open of a
// block file (VANISH_AT=N, counted over the whole process) fails with ENOENT, as if a process
// writing the store had collected the block just then; and, as such a process would have, it has
// written past what the CLI's open read of the log: bytes (the start of a record) are appended to
// the newest segment. Says so on stderr when it fires.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';

const at = Number(process.env.VANISH_AT);
let opens = 0;
function vanishes(path) {
  if (typeof path !== 'string' || !path.endsWith('.blk')) return false;
  opens++;
  if (opens !== at) return false;
  const directory = process.argv[process.argv.indexOf('--dir') + 1];
  const newest = fs.readdirSync(directory).filter((name) => name.endsWith('.log')).sort().pop();
  fs.appendFileSync(join(directory, newest), Buffer.alloc(20, 0xff));
  process.stderr.write(`vanish-block: open ${opens} of ${path} fails\n`);
  return true;
}
const enoent = (path) => Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT', errno: -2, syscall: 'open', path });
const { open, openSync } = fs;
fs.open = function (path, ...rest) {
  if (vanishes(path)) {
    const callback = rest[rest.length - 1];
    process.nextTick(() => callback(enoent(path)));
    return;
  }
  return open.call(this, path, ...rest);
};
fs.openSync = function (path, ...rest) {
  if (vanishes(path)) throw enoent(path);
  return openSync.call(this, path, ...rest);
};
syncBuiltinESMExports();
