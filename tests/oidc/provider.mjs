// A real OpenID provider for etckit's SSO tests: panva/oidc-provider on loopback.
//
//   PORT=9000 CLIENT_ID=etckit CLIENT_SECRET=s REDIRECT_URI=http://127.0.0.1:8080/login/sso/callback \
//     node provider.mjs
//
// Development interactions are on: the login page accepts any login name and any password,
// then asks for consent. The account's subject is the login name; its claims are derived
// from it (name "User <login>", email "<login>@example.org"). Prints "ready <issuer>" once
// listening.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT || 9000);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID || 'etckit',
    client_secret: process.env.CLIENT_SECRET || 'etckit-secret',
    redirect_uris: [process.env.REDIRECT_URI || 'http://127.0.0.1:8080/login/sso/callback'],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  cookies: { keys: ['etckit-test-cookie-key'] },
  claims: { openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'] },
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, name: `User ${sub}`, email: `${sub}@example.org`, email_verified: true };
      },
    };
  },
});
provider.proxy = false;

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
