//! TLS to the database, as the URL asks, with libpq's meaning of `sslmode`:
//! `disable` never; `allow`, `prefer` (the default) when the server offers
//! it and `require` always, encrypted without checking the server's
//! certificate; `verify-ca` checks that a trusted authority signed it,
//! `verify-full` also that it names the host. Trusted: the file
//! `sslrootcert=` (or `PGSSLROOTCERT`) names, else the web's roots.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// Encrypted, the certificate taken as it comes (libpq's `require`).
    None,
    /// Signed by a trusted authority (`verify-ca`).
    Authority,
    /// And naming the host connected to (`verify-full`).
    Full,
}

/// A URL made ready for the client: its TLS connector, and the URL without
/// the parameters only libpq knows.
pub(super) fn prepare(url: &str) -> Result<(String, MakeRustlsConnect), String> {
    let mut parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    let mut mode = "prefer".to_owned();
    let mut root_file = std::env::var("PGSSLROOTCERT").ok().filter(|f| !f.is_empty());
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "sslmode" => mode = value.into_owned(),
            "sslrootcert" => root_file = Some(value.into_owned()),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    let (client_mode, checks) = match mode.as_str() {
        "disable" => ("disable", Checks::None),
        "allow" | "prefer" => ("prefer", Checks::None),
        "require" => ("require", Checks::None),
        "verify-ca" => ("require", Checks::Authority),
        "verify-full" => ("require", Checks::Full),
        other => {
            return Err(format!(
                "sslmode={other} is not a mode: say disable, allow, prefer, require, verify-ca or verify-full"
            ))
        }
    };
    kept.push(("sslmode".to_owned(), client_mode.to_owned()));
    parsed.query_pairs_mut().clear().extend_pairs(kept);
    let connector = connector(checks, root_file.as_deref())?;
    Ok((parsed.to_string(), connector))
}

fn connector(checks: Checks, root_file: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match checks {
        Checks::None => Arc::new(Unchecked(provider.clone())),
        Checks::Authority | Checks::Full => {
            let roots = Arc::new(roots(root_file)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| format!("cannot check the server's certificate: {e}"))?;
            Arc::new(Checked { webpki, names: checks == Checks::Full })
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set TLS up: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// The authorities trusted: those in `file` (PEM), else the web's.
fn roots(file: Option<&str>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let Some(file) = file else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let certs = CertificateDer::pem_file_iter(file).map_err(|e| format!("cannot read sslrootcert {file}: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {file}: {e}"))?;
        roots.add(cert).map_err(|e| format!("sslrootcert {file}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {file} holds no certificate"));
    }
    Ok(roots)
}

/// `verify-ca` and `verify-full`: the web PKI's checks, the host's name
/// left out for `verify-ca`.
#[derive(Debug)]
struct Checked {
    webpki: Arc<WebPkiServerVerifier>,
    names: bool,
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            checked => checked,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `prefer` and `require`: any certificate, as libpq takes it; the
/// handshake's signatures are still checked (the session is the one the
/// certificate's key opened).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn libpq_modes_become_the_clients_and_an_unknown_one_is_named() {
        let (url, _) = super::prepare("postgres://u@h/db?sslmode=verify-full&application_name=x").expect("url");
        assert_eq!(url, "postgres://u@h/db?application_name=x&sslmode=require");
        let (url, _) = super::prepare("postgres://u@h/db").expect("url");
        assert_eq!(url, "postgres://u@h/db?sslmode=prefer");
        let e = super::prepare("postgres://u@h/db?sslmode=strict").err().unwrap_or_default();
        assert!(e.contains("sslmode=strict is not a mode"), "{e}");
        let e = super::prepare("postgres://u@h/db?sslmode=verify-ca&sslrootcert=/nonexistent.pem").err();
        assert!(e.unwrap_or_default().contains("cannot read sslrootcert /nonexistent.pem"));
    }
}
