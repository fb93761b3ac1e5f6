// examples/tokenserver driven by openid-client 6, unchanged: discovery (RFC
// 8414, algorithm 'oauth2': the server issues no ID tokens and serves no
// openid-configuration), the device flow, code + PKCE with state and iss
// (RFC 9207), refresh, introspection and revocation. ../interop_test.go runs
// this with TOKENSERVER_ISSUER set to a running server; plain http is allowed
// because that server is on loopback.
import test from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

const issuer = new URL(process.env.TOKENSERVER_ISSUER);
const clientId = process.env.TOKENSERVER_CLIENT_ID;
const redirectUri = process.env.TOKENSERVER_REDIRECT_URI;
const sub = 'node-user-' + (process.env.TOKENSERVER_RUN ?? 'x');

const config = await client.discovery(issuer, clientId, undefined, client.None(), {
  algorithm: 'oauth2',
  execute: [client.allowInsecureRequests],
  timeout: 10,
});

// login stands for the browser and the identity provider: it follows the
// authorization URL to the simulated login and returns the redirect to the
// client.
async function login(authUrl) {
  let r = await fetch(authUrl, { redirect: 'manual' });
  assert.equal(r.status, 302);
  const loginPage = new URL(r.headers.get('location'), issuer);
  r = await fetch(new URL('/simulate/login', issuer), {
    method: 'POST',
    body: new URLSearchParams({ flow: loginPage.searchParams.get('flow'), sub }),
    redirect: 'manual',
  });
  assert.equal(r.status, 302);
  return new URL(r.headers.get('location'));
}

test('discovery', () => {
  const md = config.serverMetadata();
  assert.equal(md.issuer, issuer.href.replace(/\/$/, ''));
  assert.equal(md.authorization_response_iss_parameter_supported, true);
  assert.deepEqual(md.code_challenge_methods_supported, ['S256']);
});

test('device flow', async () => {
  const da = await client.initiateDeviceAuthorization(config, { scope: 'profile' });
  assert.equal(da.verification_uri, new URL('/device', issuer).href);
  const r = await fetch(new URL('/simulate/login', issuer), {
    method: 'POST',
    body: new URLSearchParams({ user_code: da.user_code, sub }),
  });
  assert.equal(r.status, 200);
  const tokens = await client.pollDeviceAuthorizationGrant(config, da);
  assert.ok(tokens.access_token && tokens.refresh_token);
  assert.equal(tokens.scope, 'profile');
});

test('code + PKCE, refresh, introspection, revocation', async () => {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const cb = await login(client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'profile email',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
  }));
  // authorizationCodeGrant checks state and, as the metadata says so, iss.
  const tokens = await client.authorizationCodeGrant(config, cb, { pkceCodeVerifier: verifier, expectedState: state });
  assert.ok(tokens.refresh_token);
  assert.equal(tokens.id_token, undefined);

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token);

  const info = await client.tokenIntrospection(config, refreshed.access_token);
  assert.equal(info.active, true);
  assert.equal(info.sub, sub);
  assert.equal(info.client_id, clientId);

  await client.tokenRevocation(config, refreshed.refresh_token);
  await assert.rejects(client.refreshTokenGrant(config, refreshed.refresh_token), (err) => err.error === 'invalid_grant');
  assert.equal((await client.tokenIntrospection(config, refreshed.access_token)).active, false);
});

test('a wrong code_verifier is refused', async () => {
  const state = client.randomState();
  const cb = await login(client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'profile',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    state,
  }));
  await assert.rejects(
    client.authorizationCodeGrant(config, cb, { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState: state }),
    (err) => err.error === 'invalid_grant',
  );
});
