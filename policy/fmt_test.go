package policy_test

import (
	"fmt"

	"github.com/xmppfed/xmppfed/policy"
)

func fmtConfig(c *policy.Config) string { return fmt.Sprintf("%#v", c) }
