//! The agents' bearer token, on both ends: [`TokenAuth`] checks it on the agent's services,
//! [`BearerToken`] adds it to a caller's requests. All agents of a cluster share one token.

use sha2::{Digest, Sha256};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Rejects calls without `authorization: Bearer <token>`. Tokens are compared as hashes so the
/// comparison time does not depend on where they differ.
#[derive(Clone)]
pub struct TokenAuth {
    digest: [u8; 32],
}

impl TokenAuth {
    pub fn new(token: &str) -> TokenAuth {
        TokenAuth {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }
}

impl Interceptor for TokenAuth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let presented = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let diff = digest
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(Status::unauthenticated("invalid bearer token"));
        }
        Ok(req)
    }
}

/// Adds the bearer token to every outgoing call; for clients of the agent.
#[derive(Clone)]
pub struct BearerToken(pub tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl BearerToken {
    pub fn new(token: &str) -> Result<BearerToken, Status> {
        format!("Bearer {token}")
            .parse()
            .map(BearerToken)
            .map_err(|_| Status::invalid_argument("token is not valid header text"))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A request as the agent receives it after `bearer` added its header.
    fn sent_with(bearer: &str) -> Request<()> {
        BearerToken::new(bearer)
            .unwrap()
            .call(Request::new(()))
            .unwrap()
    }

    #[test]
    fn the_same_token_passes_and_any_other_is_refused() {
        let mut auth = TokenAuth::new("s3cret");
        assert!(auth.call(sent_with("s3cret")).is_ok());
        let wrong = auth.call(sent_with("s3cres")).unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert_eq!(wrong.message(), "invalid bearer token");
        let missing = auth.call(Request::new(())).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert_eq!(missing.message(), "missing bearer token");
    }

    #[test]
    fn another_scheme_is_not_a_bearer_token() {
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("authorization", "Basic s3cret".parse().unwrap());
        let err = TokenAuth::new("s3cret").call(req).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn a_token_that_is_not_header_text_is_refused_up_front() {
        let err = BearerToken::new("line\nbreak").err().unwrap();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
