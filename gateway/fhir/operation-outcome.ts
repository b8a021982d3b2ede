import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../sdk/errors.ts';
import { PROBLEM_BASE } from '../sdk/errors.ts';
import { writeErrorBody } from '../http/problem.ts';

/** FHIR R4 IssueType for an HTTP status (http://hl7.org/fhir/valueset-issue-type.html). */
function issueCode(status: number): string {
  switch (status) {
    case 401:
      return 'login';
    case 403:
      return 'forbidden';
    case 404:
      return 'not-found';
    case 405:
    case 406:
    case 415:
      return 'not-supported';
    case 409:
      return 'conflict';
    case 413:
    case 414:
      return 'too-long';
    case 422:
      return 'processing';
    case 429:
      return 'throttled';
    case 503:
      return 'transient';
    case 504:
      return 'timeout';
    default:
      return status < 500 ? 'invalid' : 'exception';
  }
}

/**
 * The error as a FHIR OperationOutcome, for FHIR clients: the same stable code as the problem document
 * (`details.coding`, system https://hcgw.dev/problems), the same fixed sentences, the same headers.
 */
export function operationOutcome(err: GatewayError, requestId?: string): Record<string, unknown> {
  return {
    resourceType: 'OperationOutcome',
    ...(requestId ? { id: requestId } : {}),
    issue: [
      {
        severity: err.status >= 500 ? 'fatal' : 'error',
        code: issueCode(err.status),
        details: { coding: [{ system: PROBLEM_BASE.replace(/\/$/, ''), code: err.code, display: err.title }], text: err.title },
        ...(err.detail ? { diagnostics: err.detail } : {}),
      },
    ],
  };
}

/** Writes `err` as an OperationOutcome (the counterpart of writeProblem for FHIR clients). */
export function writeOperationOutcome(res: ServerResponse, err: GatewayError, requestId?: string): void {
  writeErrorBody(res, err, 'application/fhir+json; charset=utf-8', operationOutcome(err, requestId));
}
