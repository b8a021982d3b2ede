/** What a change does to the governed surface: more access, more data or fewer limits is widening. */
export type Effect = 'widening' | 'narrowing';

export interface FacetChange {
  effect: Effect;
  text: string;
}
