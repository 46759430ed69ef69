/**
 * The signed-in credential (an API key or a token), kept in sessionStorage: it lasts as long as
 * the tab, is never written to disk by the page, and no other tab or site can read it.
 */
const KEY = 'conflux.credential';

export function storedCredential(): string | undefined {
  try {
    return sessionStorage.getItem(KEY) ?? undefined;
  } catch {
    return undefined;
  }
}

export function storeCredential(value: string | undefined): void {
  if (value === undefined) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, value);
}

/** What the gateway asks of callers, as its page says (`none`, `required`, or `oauth` when OAuth sign-in is offered). */
export function authMode(): 'none' | 'required' | 'oauth' {
  const value = document.querySelector('meta[name="conflux-auth"]')?.getAttribute('content');
  return value === 'none' || value === 'oauth' ? value : 'required';
}
