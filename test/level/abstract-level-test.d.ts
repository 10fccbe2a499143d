// abstract-level ships no types for its test suite (`abstract-level/test`).
declare module 'abstract-level/test' {
  interface SuiteOptions {
    test: unknown;
    factory: (options?: Record<string, unknown>) => unknown;
  }
  function suite(options: SuiteOptions): void;
  export default suite;
}
