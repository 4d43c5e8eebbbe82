package fungi_test

import (
	"testing"

	"github.com/fungistor/fungistor/fungi"
	"github.com/fungistor/fungistor/fungi/fragmenttest"
)

func TestMemStoreSuite(t *testing.T) {
	fragmenttest.Run(t, func(*testing.T) fungi.FragmentStore { return fungi.NewMemStore() })
}
