/**
 * Child-process entry: runs one task from tasks.mjs and prints its result as one marked JSON line.
 * Usage (by the harness): node worker.mjs '{"name":"fillRandom","store":"silt",...}'
 */
import { RESULT_MARK } from './harness.mjs';
import { tasks } from './tasks.mjs';

const task = JSON.parse(process.argv[2] ?? '{}');
const run = tasks[task.name];
if (run === undefined) throw new Error(`unknown task ${task.name}`);
const result = await run(task);
// Exit explicitly: a store that leaves a handle or thread behind must not stall the run.
process.stdout.write(`${RESULT_MARK}${JSON.stringify(result)}\n`, () => process.exit(0));
