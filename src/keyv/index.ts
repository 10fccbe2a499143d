/**
 * `silt/keyv`: a Keyv storage adapter backed by silt. See doc/adapters.md.
 */
export { KeyvSilt, withIterator, type KeyvLike, type KeyvSiltAdapterOptions, type KeyvSiltEntry } from './keyv-silt.js';
