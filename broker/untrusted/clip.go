// Package untrusted bounds text that came from outside (a request, a
// file, a command line) before it is quoted back in an error message, a
// log line or an audit event. It is the project's one clip: every
// package that quotes untrusted text cuts it here, on a rune boundary,
// so a cut never leaves invalid UTF-8 (which an audit event refuses).
package untrusted

import "unicode/utf8"

// Clip returns s if it is at most limit bytes long; otherwise its longest
// prefix of at most limit bytes that ends on a rune boundary, followed by
// "…". A limit below 1 clips everything to "…".
func Clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := max(0, limit)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
