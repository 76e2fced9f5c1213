package policy_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (Watch runs one).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
