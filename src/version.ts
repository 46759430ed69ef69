/** Reported to upstreams as the client and to clients as the server. */
export const GATEWAY_NAME = 'conflux';
export const GATEWAY_VERSION = '0.1.0';
