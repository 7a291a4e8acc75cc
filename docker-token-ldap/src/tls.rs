//! The rustls client configuration: the aws-lc-rs provider, a CA file or the system store,
//! and (only when asked) a verifier that accepts any certificate.

use std::path::Path;
use std::sync::Arc;

use docker_token_core::ConfigError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Builds the client config. The provider is passed explicitly, so the result does not
/// depend on (or change) the process-wide default provider.
pub(crate) fn client_config(
    ca_file: Option<&Path>,
    skip_verify: bool,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            ConfigError::new("TLS setup failed")
                .with_source(e)
                .at("tls")
        })?;
    if skip_verify {
        tracing::warn!(
            "ldap_auth.insecure_tls_skip_verify is set: LDAP server certificates are NOT verified; \
             anyone on the network path can read user passwords"
        );
        let verifier = Arc::new(AcceptAnyCertificate(provider));
        return Ok(Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth(),
        ));
    }
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca_file {
        let bad = |msg: String| ConfigError::new(msg).at("ca_certificate");
        let pem = std::fs::read(path)
            .map_err(|e| bad(format!("cannot read {}", path.display())).with_source(e))?;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert =
                cert.map_err(|e| bad(format!("{}: bad PEM", path.display())).with_source(e))?;
            roots.add(cert).map_err(|e| {
                bad(format!("{}: unusable certificate", path.display())).with_source(e)
            })?;
        }
        if roots.is_empty() {
            return Err(bad(format!(
                "{}: no CERTIFICATE in the file",
                path.display()
            )));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(ConfigError::new(
                "no system CA certificates found; set ca_certificate to the LDAP server's CA",
            )
            .at("ca_certificate"));
        }
    }
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

/// Accepts any server certificate but still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_are_config_errors() {
        let dir = std::env::temp_dir().join(format!("dt-ldap-tls-{}", std::process::id()));
        std::fs::write(&dir, "not a pem").unwrap();
        let e = client_config(Some(&dir), false).unwrap_err();
        assert_eq!(e.location(), "ca_certificate");
        assert!(client_config(Some(Path::new("/nonexistent/ca.pem")), false).is_err());
        let _ = std::fs::remove_file(dir);
        assert!(client_config(None, true).is_ok());
    }
}
