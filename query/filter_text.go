package query

// This file is tracedb's text analyzer for phrase and fulltext
// (jaeger-idl v0.14.0): how a stored attribute value splits into words and
// when a stored word equals a listed one. The backend-specific choices are
// in filter.md ("Text search").

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// isWordRune reports whether r belongs to a word: a Unicode letter, a
// decimal digit or a combining mark. Every other rune separates words.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// nextWord returns the first word of s at or after byte off, and the
// offset just past it; ok is false when s has no more words. An invalid
// byte separates words.
func nextWord(s string, off int) (word string, next int, ok bool) {
	start := -1
	for i := off; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		wordRune := isWordRune(r) && !(r == utf8.RuneError && size == 1)
		switch {
		case wordRune && start < 0:
			start = i
		case !wordRune && start >= 0:
			return s[start:i], i, true
		}
		i += size
	}
	if start >= 0 {
		return s[start:], len(s), true
	}
	return "", len(s), false
}

// sameWord reports whether a stored word equals a listed one under Unicode
// simple case folding.
func sameWord(stored, listed string) bool { return strings.EqualFold(stored, listed) }

// textHasAll reports whether every word of words occurs among the words of
// text, in any order (fulltext).
func textHasAll(text string, words []fval) bool {
	for i := range words {
		found := false
		for w, off, ok := nextWord(text, 0); ok; w, off, ok = nextWord(text, off) {
			if sameWord(w, words[i].s) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// textHasPhrase reports whether the words occur adjacent and in order
// among the words of text (phrase).
func textHasPhrase(text string, words []fval) bool {
	for w, off, ok := nextWord(text, 0); ok; w, off, ok = nextWord(text, off) {
		if !sameWord(w, words[0].s) {
			continue
		}
		at, i := off, 1
		for ; i < len(words); i++ {
			var next string
			var more bool
			next, at, more = nextWord(text, at)
			if !more || !sameWord(next, words[i].s) {
				break
			}
		}
		if i == len(words) {
			return true
		}
	}
	return false
}
