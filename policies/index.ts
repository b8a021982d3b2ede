import type { Policy } from '../gateway/sdk/index.ts';
import { auditPolicy } from './audit/index.ts';
import { consentPolicy } from './consent/index.ts';
import { idempotencyPolicy } from './idempotency/index.ts';
import { jwtPolicy } from './jwt/index.ts';
import { patientCompartmentPolicy } from './patient-compartment/index.ts';
import { scopesPolicy } from './scopes/index.ts';
import { lanePolicy } from './lane/index.ts';
import { minimizePolicy } from './minimize/index.ts';
import { rateLimitPolicy } from './rate-limit/index.ts';
import { validatePolicy } from './validate/index.ts';

/** Built-in policies, registered before plugins. Each folder exports one policy definition. */
export const builtinPolicies: readonly Policy[] = [auditPolicy, jwtPolicy, scopesPolicy, patientCompartmentPolicy, rateLimitPolicy, lanePolicy, validatePolicy, minimizePolicy, consentPolicy, idempotencyPolicy];
