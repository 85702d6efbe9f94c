// openid-client (npm) against a running jwks-service: discovery, then a
// client_credentials grant with client_secret_post or private_key_jwt.
// Usage: node client_credentials.mjs ISSUER CLIENT_ID (secret SECRET | key PKCS8_PEM_FILE) SCOPE
import { readFileSync } from "node:fs";
import * as client from "openid-client";

const [issuer, clientId, method, credential, scope] = process.argv.slice(2);
let auth;
if (method === "secret") {
  auth = client.ClientSecretPost(credential);
} else {
  const pem = readFileSync(credential, "utf8");
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
  const key = await crypto.subtle.importKey(
    "pkcs8", der, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }, false, ["sign"],
  );
  auth = client.PrivateKeyJwt(key);
}
// http:// on loopback in tests; production issuers are https.
const config = await client.discovery(new URL(issuer), clientId, undefined, auth, {
  execute: [client.allowInsecureRequests],
});
const tokens = await client.clientCredentialsGrant(config, { scope });
console.log(JSON.stringify({
  issuer: config.serverMetadata().issuer,
  access_token: tokens.access_token,
  scope: tokens.scope,
}));
