/**
 * A module kept out of start-up because its library costs resident memory and only some configs use it.
 * `load()` runs in an async step of config compilation that knows what the config names; `get()` serves
 * the synchronous factories after it. `get()` before `load()` is a bug in that step: it throws rather than
 * importing late, on the request path.
 */
export function lazyModule<T>(name: string, importer: () => Promise<T>): { load(): Promise<T>; get(): T } {
  let mod: T | undefined;
  return {
    async load() {
      return (mod ??= await importer());
    },
    get() {
      if (mod === undefined) throw new Error(`${name} is used before it was loaded`);
      return mod;
    },
  };
}
