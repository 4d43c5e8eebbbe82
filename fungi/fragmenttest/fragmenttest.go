// Package fragmenttest is the suite every fungi.FragmentStore must pass:
// the in-memory store, the ZDB adapters (embedded and remote) and, later,
// the libp2p exchange run the same cases.
package fragmenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/fungistor/fungistor/fungi"
)

// Run runs the suite; open returns an empty store per subtest.
func Run(t *testing.T, open func(t *testing.T) fungi.FragmentStore) {
	ctx := context.Background()
	t.Run("PutGetHas", func(t *testing.T) {
		s := open(t)
		key, data := []byte("fragment-key-0001"), bytes.Repeat([]byte{0xab}, 65536+40)
		if ok, err := s.HasFragment(ctx, key); ok || err != nil {
			t.Fatalf("Has before Put = %v, %v", ok, err)
		}
		if _, err := s.GetFragment(ctx, key); !errors.Is(err, fungi.ErrFragmentNotFound) {
			t.Fatalf("Get before Put: %v, want ErrFragmentNotFound", err)
		}
		if err := s.PutFragment(ctx, key, data); err != nil {
			t.Fatal(err)
		}
		if err := s.PutFragment(ctx, key, data); err != nil {
			t.Fatalf("idempotent Put: %v", err)
		}
		got, err := s.GetFragment(ctx, key)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get = %d bytes, %v", len(got), err)
		}
		got[0] ^= 0xff // the caller owns what it gets
		if again, _ := s.GetFragment(ctx, key); !bytes.Equal(again, data) {
			t.Fatal("Get returned the store's own buffer")
		}
		if ok, err := s.HasFragment(ctx, key); !ok || err != nil {
			t.Fatalf("Has after Put = %v, %v", ok, err)
		}
	})
	t.Run("BinaryKeys", func(t *testing.T) {
		s := open(t)
		for i := 0; i < 50; i++ {
			key := []byte{byte(i), 0, '\r', '\n', 0xff, byte(i * 7)}
			if err := s.PutFragment(ctx, key, []byte(fmt.Sprint("v", i))); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 50; i++ {
			key := []byte{byte(i), 0, '\r', '\n', 0xff, byte(i * 7)}
			if got, err := s.GetFragment(ctx, key); err != nil || string(got) != fmt.Sprint("v", i) {
				t.Fatalf("key %d = %q, %v", i, got, err)
			}
		}
	})
	t.Run("Delete", func(t *testing.T) {
		s := open(t)
		d, ok := s.(fungi.FragmentDeleter)
		if !ok {
			return // optional capability
		}
		s.PutFragment(ctx, []byte("k"), []byte("v"))
		if err := d.DeleteFragment(ctx, []byte("k")); err != nil {
			t.Fatal(err)
		}
		if err := d.DeleteFragment(ctx, []byte("k")); err != nil {
			t.Fatalf("delete of a missing fragment: %v", err)
		}
		if _, err := s.GetFragment(ctx, []byte("k")); !errors.Is(err, fungi.ErrFragmentNotFound) {
			t.Fatalf("Get after Delete: %v", err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		s := open(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 100; i++ {
					k := []byte(fmt.Sprintf("g%d/%d", g, i))
					if err := s.PutFragment(ctx, k, k); err != nil {
						errs <- err
						return
					}
					if v, err := s.GetFragment(ctx, k); err != nil || !bytes.Equal(v, k) {
						errs <- fmt.Errorf("%s = %q, %v", k, v, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}
