package sqlbackend

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// mysqlTLSParams are the mysql client's TLS options, as MySQL URLs take them.
var mysqlTLSParams = []string{"ssl-mode", "ssl-ca", "ssl-cert", "ssl-key"}

// mysqlTLS configures TLS from the mysql client's options in q:
//
//   - ssl-mode=DISABLED: no TLS.
//   - PREFERRED: TLS when the server offers it, else plain; not verified.
//   - REQUIRED: TLS or no connection; the certificate is not verified.
//   - VERIFY_CA: TLS, the server's certificate chain verified against
//     ssl-ca (else the system's roots); its host name is not checked.
//   - VERIFY_IDENTITY: as VERIFY_CA, and the certificate must name the
//     URL's host.
//
// ssl-ca is a PEM file of CA certificates; ssl-cert and ssl-key (both or
// neither) a PEM client certificate and its key. Without ssl-mode, ssl-ca
// means VERIFY_IDENTITY and no ssl-ca means the driver's default (no TLS,
// or the legacy tls parameter). Case does not matter in the mode.
func mysqlTLS(where string, m *mysql.Config, q url.Values) error {
	mode := strings.ToUpper(q.Get("ssl-mode"))
	ca, cert, key := q.Get("ssl-ca"), q.Get("ssl-cert"), q.Get("ssl-key")
	if mode == "" && ca == "" && cert == "" && key == "" {
		return nil
	}
	if q.Has("tls") {
		return invalidURL(where, "tls and ssl-mode/ssl-ca/ssl-cert/ssl-key are alternatives: give one")
	}
	if mode == "" {
		mode = "VERIFY_IDENTITY"
		if ca == "" {
			mode = "REQUIRED"
		}
	}
	if (cert == "") != (key == "") {
		return invalidURL(where, "ssl-cert and ssl-key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return invalidURL(where, "ssl-cert/ssl-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	var roots *x509.CertPool
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return invalidURL(where, "ssl-ca: %v", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return invalidURL(where, "ssl-ca %s holds no PEM certificate", ca)
		}
	}
	switch mode {
	case "DISABLED":
		m.TLSConfig = "false"
		return nil
	case "PREFERRED", "REQUIRED":
		cfg.InsecureSkipVerify = true
		m.AllowFallbackToPlaintext = mode == "PREFERRED"
	case "VERIFY_CA":
		// Go verifies the chain and the name together: verify the chain
		// alone, after the handshake.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("authdb: ssl-mode VERIFY_CA: the server sent no certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, c := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
				return fmt.Errorf("authdb: ssl-mode VERIFY_CA: %w", err)
			}
			return nil
		}
	case "VERIFY_IDENTITY":
		cfg.RootCAs = roots
		host, _, err := net.SplitHostPort(m.Addr)
		if err != nil {
			host = m.Addr
		}
		cfg.ServerName = strings.Trim(host, "[]")
	default:
		return invalidURL(where, "ssl-mode %q is not DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY", q.Get("ssl-mode"))
	}
	m.TLS = cfg
	return nil
}
