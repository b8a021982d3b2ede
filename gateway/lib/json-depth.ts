/**
 * Deepest nesting accepted in a JSON request body. JSON.parse copes with any depth, but everything that
 * walks the value afterwards (JSON.stringify, structuredClone, schema validation, the upstream's own
 * parser) recurses and overflows the stack a few thousand levels down. Real documents stay far below.
 */
export const MAX_JSON_DEPTH = 128;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const [OPEN_ARRAY, OPEN_OBJECT, CLOSE_ARRAY, CLOSE_OBJECT] = [0x5b, 0x7b, 0x5d, 0x7d];

/**
 * True when brackets outside strings nest deeper than `max`. One pass over the bytes, without parsing,
 * so the check costs the same whether the body is valid JSON or not (UTF-8 continuation bytes are all
 * ≥ 0x80, so they can never be mistaken for a bracket or a quote).
 */
export function jsonDeeperThan(bytes: Uint8Array, max = MAX_JSON_DEPTH): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    if (inString) {
      if (b === BACKSLASH) i++;
      else if (b === QUOTE) inString = false;
    } else if (b === QUOTE) inString = true;
    else if (b === OPEN_ARRAY || b === OPEN_OBJECT) {
      if (++depth > max) return true;
    } else if (b === CLOSE_ARRAY || b === CLOSE_OBJECT) depth--;
  }
  return false;
}
