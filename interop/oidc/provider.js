// A real OpenID Provider (panva's oidc-provider, pinned in package.json and
// package-lock.json) for ehrgate's dashboard login test. Its built-in
// development login and consent pages accept any login name; the account's
// groups come from the table below. Configuration from the environment:
//   PORT          the loopback port to listen on (the issuer is http://127.0.0.1:PORT)
//   REDIRECT_URI  ehrgate's /login/callback
//   CLIENT_SECRET the client secret of client "ehrgate"
//   POST_LOGOUT_REDIRECT_URI  where sign-out at the provider returns (ehrgate's /login)
// Prints "ready ISSUER" on stdout once listening.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

// Who is in which group at this pretend hospital.
const people = {
  'dr.jones': { name: 'Dr Mary Jones', groups: ['hospital-clinicians'] },
  'ann.audit': { name: 'Ann Audit', groups: ['privacy-office'] },
  'no.role': { name: 'No Role', groups: ['cafeteria'] },
};

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'ehrgate',
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    post_logout_redirect_uris: [process.env.POST_LOGOUT_REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], groups: ['groups'] },
  // Release the claims of the granted scopes in the ID token, as many
  // hospital IdPs do with groups (ehrgate also reads UserInfo).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  cookies: { keys: ['ehrgate-test-only-cookie-key'] },
  async findAccount(ctx, sub) {
    const p = people[sub] || { name: sub, groups: [] };
    return {
      accountId: sub,
      async claims() {
        return { sub, name: p.name, preferred_username: sub, groups: p.groups };
      },
    };
  },
});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
