/**
 * Which broker the next attempt goes to: a list of URLs tried in rotation, plus MQTT 5 redirects.
 *
 * - After a failed attempt the rotation moves to the next URL; after a lost connection the first
 *   retry goes to the same server (most losses are blips, and the session lives there).
 * - CONNACK or DISCONNECT 0x9C (use another server) with a Server Reference: the next attempt
 *   goes to the referenced server, once; rotation resumes from the list after that.
 * - 0x9D (server moved, permanent): the referenced server is added in front of the list and
 *   stays preferred for the life of the device object.
 */
export class ServerRotation {
  readonly #urls: string[];
  #index = 0;
  #redirect: string | null = null;
  #current: string;
  #currentIsRedirect = false;

  constructor(urls: readonly string[]) {
    if (urls.length === 0) throw new RangeError('at least one server URL is needed');
    this.#urls = [...urls];
    this.#current = this.#urls[0]!;
  }

  get urls(): readonly string[] {
    return this.#urls;
  }

  /** URL for the next attempt. */
  next(): string {
    if (this.#redirect !== null) {
      this.#current = this.#redirect;
      this.#redirect = null;
      this.#currentIsRedirect = true;
    } else {
      this.#current = this.#urls[this.#index % this.#urls.length]!;
      this.#currentIsRedirect = false;
    }
    return this.#current;
  }

  /** The attempt on the current URL failed: move on. */
  failed(): void {
    // A failed one-off redirect target falls back to the list where it left off.
    if (this.#currentIsRedirect) return;
    this.#index = (this.#index + 1) % this.#urls.length;
  }

  /** A server redirect (MQTT 5 §4.11). */
  redirect(reference: string, permanent: boolean, fromUrl: string): string | null {
    const url = resolveServerReference(reference, fromUrl);
    if (url === null) return null;
    if (permanent) {
      const i = this.#urls.indexOf(url);
      if (i >= 0) this.#urls.splice(i, 1);
      this.#urls.unshift(url);
      this.#index = 0;
    } else {
      this.#redirect = url;
    }
    return url;
  }
}

/**
 * Turns a Server Reference into a URL. MQTT 5 does not define the format (§4.11); in practice it
 * is `host`, `host:port`, `[v6]:port` or a full URL, possibly several separated by spaces. The
 * first one is used; a missing scheme or port is taken from the URL the reference came from.
 */
export function resolveServerReference(reference: string, fromUrl: string): string | null {
  const first = reference.trim().split(/\s+/)[0];
  if (!first) return null;
  try {
    if (first.includes('://')) return new URL(first).toString().replace(/\/$/, '');
    const from = new URL(fromUrl);
    const u = new URL(`${from.protocol}//${first}`);
    if (u.port === '' && from.port !== '') u.port = from.port;
    return u.toString().replace(/\/$/, '');
  } catch {
    return null;
  }
}
