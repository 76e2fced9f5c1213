package federationtest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: every
// Env, Domain and Server they start must be closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
