import { type Authenticator, AuthMethod, type AuthRequest, type AuthResult } from './types.js';

/** Admits everyone. Only ever active when a listener's `authn` names it explicitly (opt-in). */
export class AnonymousAuthenticator implements Authenticator {
  readonly method = AuthMethod.Anonymous;
  readonly remote = false;
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  async start(): Promise<void> {}

  async authenticate(request: AuthRequest): Promise<AuthResult> {
    return { outcome: 'allow', identity: request.clientId };
  }

  async close(): Promise<void> {}
}
