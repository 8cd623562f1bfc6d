package pki

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
)

// Setting returns the cacerts setting Rancher stores for a CA file it was given: the file's
// bytes with leading and trailing white space removed (Go's TrimSpace, as Rancher does). A
// UTF-8 byte order mark is not white space and survives, and so do CRLF line ends inside.
func Setting(file []byte) []byte {
	return bytes.Clone(bytes.TrimSpace(file))
}

// CACertsServed returns exactly the body Rancher's GET /cacerts sends for a cacerts setting:
// nothing when the setting is empty or only white space; otherwise the setting byte for byte,
// plus "\n" when it does not already end in "\n". The served bytes are not trimmed: a setting
// with leading blank lines is served with them.
func CACertsServed(setting []byte) []byte {
	if len(bytes.TrimSpace(setting)) == 0 {
		return []byte{}
	}
	out := bytes.Clone(setting)
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	return out
}

// Checksum is the lower-case hex SHA-256 of CACertsServed(setting), the value Rancher puts in
// CATTLE_CA_CHECKSUM and --ca-checksum; "" when no CA is served.
//
// Rancher itself tests emptiness with setting != "" rather than with TrimSpace; the two only
// differ for a setting made of white space alone, which Rancher never stores because it trims
// the setting when it sets it (see Setting).
func Checksum(setting []byte) string {
	served := CACertsServed(setting)
	if len(served) == 0 {
		return ""
	}
	sum := sha256.Sum256(served)
	return hex.EncodeToString(sum[:])
}
