import { isInputRequiredResult, type InputRequiredResult } from '@modelcontextprotocol/client';

/**
 * Whether an upstream answered with `input_required` (2026-07-28) instead of a result: it
 * needs the caller's input (`inputRequests`) and a retry of the same request carrying
 * `inputResponses` and the `requestState` it gave, byte for byte.
 */
export function isInputRequired(result: unknown): result is InputRequiredResult {
  return isInputRequiredResult(result);
}
