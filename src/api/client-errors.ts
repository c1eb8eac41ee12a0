import { VigilError } from '../shared/index.js';

/** A running gateway's local API could not be reached, or refused or failed a request. */
export class GatewayApiError extends VigilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VIGIL_GATEWAY_API', message, options);
  }
}
