// Package e2e holds end-to-end tests that run tracedb as a separate process
// next to the real programs it serves, over the network, the way users run
// it. They build the tracedb binary themselves and need the other programs
// prebuilt; see README.md for which and how. The package has no code of its
// own beyond the tests.
package e2e
