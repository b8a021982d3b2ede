import type { Policy } from '../gateway/types.ts';
import { jwtPolicy } from './jwt/index.ts';

/** Built-in policies, registered before plugins. Each folder exports one policy definition. */
export const builtinPolicies: readonly Policy[] = [jwtPolicy];
