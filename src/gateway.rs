//! `authgraph gateway-config hasura|apollo-router|yoga`: configuration for a
//! service that verifies authgraph's access tokens, written from the
//! current settings (the JWKS URL under `PUBLIC_URL`, the issuer, the
//! audience, the one algorithm, the claims and where the token travels).
//!
//! Access tokens always travel as `Authorization: Bearer <token>` (cookie
//! mode keeps only the refresh token in a cookie, which no consumer may
//! read), so every configuration reads that header.

use serde_json::json;

use crate::config::{ClaimsProfile, Consumer, JwtAlgorithm, Settings};

/// Hasura's claims namespace (`JWT_CLAIMS=hasura`).
pub const HASURA_NAMESPACE: &str = "https://hasura.io/jwt/claims";

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "JWT_ALGORITHM=HS256: nothing may be published, and a consumer would need JWT_SECRET, \
         with which it could mint tokens; choose EdDSA, ES256 or RS256"
    )]
    Symmetric,
    #[error(
        "{consumer} can't verify {algorithm} (@graphql-yoga/plugin-jwt verifies through the \
         jsonwebtoken package, which has no EdDSA): choose ES256 or RS256"
    )]
    Unsupported {
        consumer: &'static str,
        algorithm: &'static str,
    },
}

/// The configuration, and warnings for settings that stop it from working.
pub struct Generated {
    pub text: String,
    pub warnings: Vec<String>,
}

/// The configuration of `consumer` for these settings.
pub fn generate(settings: &Settings, consumer: Consumer) -> Result<Generated, GatewayError> {
    let algorithm = settings.tokens.jwt_algorithm;
    if !algorithm.is_asymmetric() {
        return Err(GatewayError::Symmetric);
    }
    let facts = Facts {
        jwks_uri: settings.edge.public_url.join(".well-known/jwks.json"),
        issuer: settings.issuer(),
        audience: settings.audience(),
        algorithm: algorithm.as_str(),
        verified_only: settings.mail.verified_only(),
    };
    let mut warnings = Vec::new();
    let text = match consumer {
        Consumer::Hasura => {
            if settings.tokens.jwt_claims != ClaimsProfile::Hasura {
                warnings.push(
                    "JWT_CLAIMS is not `hasura`: Hasura finds no session variables in the tokens \
                     until authgraph runs with JWT_CLAIMS=hasura"
                        .to_owned(),
                );
            }
            if facts.verified_only {
                warnings.push(
                    "EMAIL_VERIFICATION=required: access tokens carry `email_verified`, which \
                     Hasura's JWT mode does not read (only its claims namespace): Hasura accepts \
                     an unverified account's token with the `user` role. Only that account's \
                     signup issues one (authgraph refuses its logins and refreshes until the \
                     address is verified), for ACCESS_TOKEN_TTL; to refuse it, put Hasura behind \
                     a gateway that checks the claim (`authgraph gateway-config apollo-router` \
                     shows how)"
                        .to_owned(),
                );
            }
            hasura(&facts)
        }
        Consumer::ApolloRouter => apollo_router(&facts),
        Consumer::Yoga => {
            if algorithm == JwtAlgorithm::EdDsa {
                return Err(GatewayError::Unsupported {
                    consumer: "GraphQL Yoga",
                    algorithm: algorithm.as_str(),
                });
            }
            yoga(&facts)
        }
    };
    if !settings.edge.public_url.origin().is_https()
        && !settings.edge.public_url.origin().is_loopback()
    {
        warnings.push(format!(
            "PUBLIC_URL is plain http ({}): consumers would fetch the keys unprotected",
            settings.edge.public_url.origin()
        ));
    }
    Ok(Generated { text, warnings })
}

/// What every configuration is made of.
struct Facts {
    jwks_uri: String,
    issuer: Option<String>,
    audience: Option<String>,
    algorithm: &'static str,
    /// `EMAIL_VERIFICATION=required`: access tokens carry `email_verified`.
    verified_only: bool,
}

/// `HASURA_GRAPHQL_JWT_SECRET`: one line of JSON, to paste into the
/// variable (or `HASURA_GRAPHQL_JWT_SECRET="$(authgraph gateway-config hasura)"`).
fn hasura(facts: &Facts) -> String {
    let mut config = json!({
        "jwk_url": facts.jwks_uri,
        "claims_namespace": HASURA_NAMESPACE,
        "claims_format": "json",
        "header": { "type": "Authorization" },
    });
    if let Some(issuer) = &facts.issuer {
        config["issuer"] = json!(issuer);
    }
    if let Some(audience) = &facts.audience {
        config["audience"] = json!(audience);
    }
    format!("{config}\n")
}

/// A YAML scalar: JSON's string syntax is YAML's double-quoted style.
fn quoted(value: &str) -> String {
    json!(value).to_string()
}

/// The `authentication` section of Apollo Router 2's router.yaml.
fn apollo_router(facts: &Facts) -> String {
    let mut yaml = String::from(
        "# Apollo Router (router.yaml): verify authgraph's access tokens.\n\
         # Written by `authgraph gateway-config apollo-router` from authgraph's settings.\n\
         authentication:\n  router:\n    jwt:\n      header_name: Authorization\n      header_value_prefix: Bearer\n      jwks:\n",
    );
    yaml.push_str(&format!("        - url: {}\n", quoted(&facts.jwks_uri)));
    if let Some(issuer) = &facts.issuer {
        yaml.push_str(&format!(
            "          issuers:\n            - {}\n",
            quoted(issuer)
        ));
    }
    if let Some(audience) = &facts.audience {
        yaml.push_str(&format!(
            "          audiences:\n            - {}\n",
            quoted(audience)
        ));
    }
    yaml.push_str(&format!(
        "          algorithms:\n            - {}\n",
        facts.algorithm
    ));
    if facts.verified_only {
        yaml.push_str(ROUTER_VERIFIED_EMAIL);
    }
    yaml
}

/// Under `EMAIL_VERIFICATION=required`: how the Router refuses an
/// unverified account's token, as comments (a script is a file of its own).
const ROUTER_VERIFIED_EMAIL: &str = "\
# EMAIL_VERIFICATION=required: access tokens carry `email_verified`. The JWT
# plugin checks signatures, not claims: refuse an unverified account's token
# with a Rhai script (rhai/main.rhai) and this section:
#
# rhai:
#   scripts: rhai
#   main: main.rhai
#
# main.rhai:
#   fn supergraph_service(service) {
#     service.map_request(|request| {
#       let claims = request.context[Router.APOLLO_AUTHENTICATION_JWT_CLAIMS];
#       if claims != () && claims[\"email_verified\"] == false {
#         throw #{ status: 403, message: \"The account's email address is not verified yet\" };
#       }
#     });
#   }
";

/// An ES module exporting the options of `useJWT` from `@graphql-yoga/plugin-jwt` 3.
fn yoga(facts: &Facts) -> String {
    let mut verification = vec![format!("    algorithms: [{}],", quoted(facts.algorithm))];
    if let Some(issuer) = &facts.issuer {
        verification.push(format!("    issuer: [{}],", quoted(issuer)));
    }
    if let Some(audience) = &facts.audience {
        verification.push(format!("    audience: {},", quoted(audience)));
    }
    let (plugins, verified_email) = if facts.verified_only {
        (
            "[useJWT(authgraphJwt), authgraphVerifiedEmail]",
            YOGA_VERIFIED_EMAIL,
        )
    } else {
        ("[useJWT(authgraphJwt)]", "")
    };
    format!(
        r#"// GraphQL Yoga with @graphql-yoga/plugin-jwt 3: verify authgraph's access tokens.
// Written by `authgraph gateway-config yoga` from authgraph's settings.
//
//   import {{ createYoga }} from "graphql-yoga";
//   import {{ authgraphPlugins }} from "./authgraph-jwt.mjs";
//   const yoga = createYoga({{ schema, plugins: authgraphPlugins }});
//   // resolvers: context.jwt.payload.sub is the user's id, .role its role
import {{ createRemoteJwksSigningKeyProvider, extractFromHeader, useJWT }} from "@graphql-yoga/plugin-jwt";

export const authgraphJwt = {{
  signingKeyProviders: [createRemoteJwksSigningKeyProvider({{ jwksUri: {jwks} }})],
  tokenLookupLocations: [extractFromHeader({{ name: "authorization", prefix: "Bearer" }})],
  tokenVerification: {{
{verification}
  }},
  // No token: the request goes on unauthenticated (resolvers decide); a bad one is refused.
  reject: {{ missingToken: false, invalidToken: true }},
}};
{verified_email}
export const authgraphPlugins = {plugins};
"#,
        jwks = quoted(&facts.jwks_uri),
        verification = verification.join("\n"),
    )
}

/// Under `EMAIL_VERIFICATION=required`: a plugin after `useJWT` that refuses
/// a token saying the account's address is not verified.
const YOGA_VERIFIED_EMAIL: &str = r#"
import { createGraphQLError } from "graphql-yoga";

// EMAIL_VERIFICATION=required: an account whose address is not verified yet
// is refused, as authgraph refuses it everywhere but its own account fields.
export const authgraphVerifiedEmail = {
  onContextBuilding({ context }) {
    if (context.jwt?.payload?.email_verified === false) {
      throw createGraphQLError("The account's email address is not verified yet", {
        extensions: { code: "EMAIL_NOT_VERIFIED", http: { status: 403 } },
      });
    }
  },
};
"#;

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::config::Cli;

    fn settings(args: &[&str]) -> Settings {
        let mut argv = vec!["authgraph"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings
    }

    #[test]
    fn hs256_publishes_nothing_and_yoga_has_no_eddsa() {
        for consumer in [Consumer::Hasura, Consumer::ApolloRouter, Consumer::Yoga] {
            assert!(matches!(
                generate(&settings(&[]), consumer),
                Err(GatewayError::Symmetric)
            ));
        }
        let eddsa = settings(&["--jwt-algorithm", "EdDSA"]);
        assert!(matches!(
            generate(&eddsa, Consumer::Yoga),
            Err(GatewayError::Unsupported { .. })
        ));
        assert!(generate(&eddsa, Consumer::ApolloRouter).is_ok());
    }

    #[test]
    fn hasura_is_one_line_of_json_from_the_settings() {
        let s = settings(&[
            "--jwt-algorithm",
            "ES256",
            "--jwt-claims",
            "hasura",
            "--public-url",
            "https://auth.example.com",
        ]);
        let generated = generate(&s, Consumer::Hasura).unwrap();
        assert!(generated.warnings.is_empty());
        assert_eq!(generated.text.lines().count(), 1);
        let config: serde_json::Value = serde_json::from_str(&generated.text).unwrap();
        assert_eq!(
            config["jwk_url"],
            "https://auth.example.com/.well-known/jwks.json"
        );
        assert_eq!(config["issuer"], "https://auth.example.com");
        assert_eq!(config["audience"], "authgraph");
        assert_eq!(config["claims_namespace"], HASURA_NAMESPACE);
        let standard = settings(&["--jwt-algorithm", "ES256"]);
        assert_eq!(
            generate(&standard, Consumer::Hasura)
                .unwrap()
                .warnings
                .len(),
            1
        );
    }
}
