import { GatewayError, type GatewayErrorOptions } from '../../sdk/errors.ts';

/**
 * The gateway could not obtain its own credentials for an upstream (token endpoint down, slow, or
 * refusing the gateway's client): the request is not sent without them. 503, never a hang.
 */
export class UpstreamCredentialsUnavailable extends GatewayError {
  static readonly code = 'upstream-credentials-unavailable';
  constructor(opts: GatewayErrorOptions = {}) {
    super(UpstreamCredentialsUnavailable.code, 503, 'Upstream credentials unavailable', {
      detail: 'The gateway cannot obtain credentials for the upstream service right now',
      ...opts,
      headers: { 'Retry-After': '5', ...opts.headers },
    });
    this.name = 'UpstreamCredentialsUnavailable';
  }
}
