// Package clock is the injectable time source of xmppfed's timers, so that
// tests of timeouts and keepalives advance a fake clock instead of sleeping.
package clock
