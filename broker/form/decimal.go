package form

import "strings"

// decimalCmp compares two JSON number literals exactly, as decimals (-1,
// 0, +1), without converting them to binary floating point or building
// big numbers: a literal of 40 characters may say 1e-999999999.
func decimalCmp(a, b string) int {
	an, ad, ae := decimalParts(a)
	bn, bd, be := decimalParts(b)
	sa, sb := decimalSign(an, ad), decimalSign(bn, bd)
	switch {
	case sa != sb:
		if sa < sb {
			return -1
		}
		return 1
	case sa == 0:
		return 0
	}
	// Same sign, both non-zero: compare magnitudes 0.digits × 10^exp.
	c := 0
	switch {
	case ae != be:
		c = 1
		if ae < be {
			c = -1
		}
	default:
		c = strings.Compare(ad, bd) // no leading or trailing zeros
	}
	return c * sa
}

func decimalSign(neg bool, digits string) int {
	switch {
	case digits == "":
		return 0
	case neg:
		return -1
	}
	return 1
}

// decimalParts reads a JSON number literal as its sign, its significant
// digits (no leading or trailing zeros; "" for zero) and the exponent e
// with value 0.digits × 10^e. Exponents saturate far beyond any bound.
func decimalParts(s string) (neg bool, digits string, exp int64) {
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	mant := s
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant = s[:i]
		exp = decimalExp(s[i+1:])
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	digits = intPart + frac
	exp += int64(len(intPart))
	k := 0
	for k < len(digits) && digits[k] == '0' {
		k++
	}
	digits, exp = strings.TrimRight(digits[k:], "0"), exp-int64(k)
	return neg, digits, exp
}

// decimalExp reads an exponent ([+-]digits), saturating at ±1e12.
func decimalExp(s string) int64 {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	var e int64
	for i := 0; i < len(s); i++ {
		if e < 1e12 {
			e = e*10 + int64(s[i]-'0')
		}
	}
	if neg {
		return -e
	}
	return e
}
