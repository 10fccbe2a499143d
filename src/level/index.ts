/**
 * `silt/level`: an abstract-level database backed by silt. See doc/adapters.md.
 */
export { LevelError, SiltIterator, SiltKeyIterator, SiltLevel, SiltLevelSnapshot, SiltValueIterator, type SiltLevelOptions } from './silt-level.js';
