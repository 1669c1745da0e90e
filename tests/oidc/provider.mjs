// A real OpenID Connect provider (the npm package oidc-provider, pinned in scripts/test.sh) for
// tests/test_sso.py: `node provider.mjs PORT REDIRECT_URI MODULE_DIR` (MODULE_DIR: where npm installed it). One confidential client
// ("gateway" / "gateway-secret"); its built-in development login form accepts any account name
// (any password): "boss" is in the "gateway-admins" group, every other account in none.
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const [port, redirectUri, moduleDir] = process.argv.slice(2);
const entry = path.join(moduleDir, 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'gateway',
    client_secret: 'gateway-secret',
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: `${id}@example.test`,
      email_verified: true,
      preferred_username: id,
      name: id,
      groups: id === 'boss' ? ['gateway-admins', 'staff-all'] : ['everyone'],
    }),
  }),
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['test-only-cookie-key'] },
});

provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
