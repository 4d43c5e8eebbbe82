// Package storetest is the suite every store.KV implementation must pass:
// the embedded engine and the remote client run the same cases, so the
// layers above can use either without caring which.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/fungistor/fungistor/store"
)

// Run runs the suite. open returns an empty user-mode namespace; it is
// called once per subtest.
func Run(t *testing.T, open func(t *testing.T) store.KV) {
	ctx := context.Background()
	t.Run("SetGet", func(t *testing.T) {
		kv := open(t)
		k, changed, err := kv.Set(ctx, []byte("a"), []byte("one"))
		if err != nil || !changed || string(k) != "a" {
			t.Fatalf("Set = %q, %v, %v", k, changed, err)
		}
		mustGet(t, kv, "a", "one")
		if _, changed, err := kv.Set(ctx, []byte("a"), []byte("one")); err != nil || changed {
			t.Fatalf("Set same value: changed=%v err=%v, want unchanged", changed, err)
		}
		if _, changed, err := kv.Set(ctx, []byte("a"), []byte("two")); err != nil || !changed {
			t.Fatalf("overwrite: changed=%v err=%v", changed, err)
		}
		mustGet(t, kv, "a", "two")
	})
	t.Run("Missing", func(t *testing.T) {
		kv := open(t)
		if _, err := kv.Get(ctx, []byte("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get missing: %v, want ErrNotFound", err)
		}
		if err := kv.Del(ctx, []byte("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Del missing: %v, want ErrNotFound", err)
		}
		if ok, err := kv.Exists(ctx, []byte("nope")); ok || err != nil {
			t.Fatalf("Exists missing = %v, %v", ok, err)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		kv := open(t)
		mustSet(t, kv, "k", "v")
		if ok, err := kv.Exists(ctx, []byte("k")); !ok || err != nil {
			t.Fatalf("Exists = %v, %v", ok, err)
		}
		if err := kv.Del(ctx, []byte("k")); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(ctx, []byte("k")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get deleted: %v", err)
		}
		if err := kv.Del(ctx, []byte("k")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Del twice: %v", err)
		}
		mustSet(t, kv, "k", "again")
		mustGet(t, kv, "k", "again")
	})
	t.Run("EmptyKey", func(t *testing.T) {
		kv := open(t)
		if _, _, err := kv.Set(ctx, nil, []byte("v")); !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Set empty key: %v, want ErrInvalidKey", err)
		}
		if _, err := kv.Get(ctx, nil); !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Get empty key: %v, want ErrInvalidKey", err)
		}
		if err := kv.Del(ctx, nil); !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Del empty key: %v, want ErrInvalidKey", err)
		}
		if ok, err := kv.Exists(ctx, nil); ok || !errors.Is(err, store.ErrInvalidKey) {
			t.Fatalf("Exists empty key = %v, %v; want ErrInvalidKey", ok, err)
		}
	})
	t.Run("GetMany", func(t *testing.T) {
		kv := open(t)
		mustSet(t, kv, "x", "1")
		mustSet(t, kv, "z", "3")
		vs, err := kv.GetMany(ctx, [][]byte{[]byte("x"), []byte("y"), []byte("z")})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 3 || string(vs[0]) != "1" || vs[1] != nil || string(vs[2]) != "3" {
			t.Fatalf("GetMany = %q", vs)
		}
	})
	t.Run("Binary", func(t *testing.T) {
		kv := open(t)
		key := []byte("\x00\r\n$*-+ \xff")
		val := []byte("\r\n\x00*3\r\n$-1\r\n")
		if _, _, err := kv.Set(ctx, key, val); err != nil {
			t.Fatal(err)
		}
		got, err := kv.Get(ctx, key)
		if err != nil || !bytes.Equal(got, val) {
			t.Fatalf("Get binary = %q, %v", got, err)
		}
		if _, _, err := kv.Set(ctx, []byte("empty"), nil); err != nil {
			t.Fatal(err)
		}
		got, err = kv.Get(ctx, []byte("empty"))
		if err != nil || len(got) != 0 {
			t.Fatalf("Get empty value = %q, %v", got, err)
		}
	})
	t.Run("Limits", func(t *testing.T) {
		kv := open(t)
		k255 := bytes.Repeat([]byte("k"), store.MaxKeySize)
		if _, _, err := kv.Set(ctx, k255, []byte("v")); err != nil {
			t.Fatalf("255-byte key: %v", err)
		}
		if _, _, err := kv.Set(ctx, append(k255, 'k'), []byte("v")); !errors.Is(err, store.ErrKeyTooLong) {
			t.Fatalf("256-byte key: %v, want ErrKeyTooLong", err)
		}
		big := bytes.Repeat([]byte{7}, store.MaxValueSize)
		if _, _, err := kv.Set(ctx, []byte("big"), big); err != nil {
			t.Fatalf("8 MiB value: %v", err)
		}
		got, err := kv.Get(ctx, []byte("big"))
		if err != nil || !bytes.Equal(got, big) {
			t.Fatalf("Get 8 MiB value: len %d, %v", len(got), err)
		}
		if _, _, err := kv.Set(ctx, []byte("bigger"), append(big, 7)); !errors.Is(err, store.ErrValueTooLarge) {
			t.Fatalf("8 MiB + 1 value: %v, want ErrValueTooLarge", err)
		}
		mustSet(t, kv, "after", "still works")
		mustGet(t, kv, "after", "still works")
	})
	t.Run("Concurrent", func(t *testing.T) {
		kv := open(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					k := fmt.Sprintf("g%d-%d", g, i)
					if _, _, err := kv.Set(ctx, []byte(k), []byte(k+"-value")); err != nil {
						errs <- err
						return
					}
					v, err := kv.Get(ctx, []byte(k))
					if err != nil || string(v) != k+"-value" {
						errs <- fmt.Errorf("get %s = %q, %v", k, v, err)
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

func mustSet(t *testing.T, kv store.KV, k, v string) {
	t.Helper()
	if _, _, err := kv.Set(context.Background(), []byte(k), []byte(v)); err != nil {
		t.Fatalf("Set %q: %v", k, err)
	}
}

func mustGet(t *testing.T, kv store.KV, k, want string) {
	t.Helper()
	got, err := kv.Get(context.Background(), []byte(k))
	if err != nil || string(got) != want {
		t.Fatalf("Get %q = %q, %v; want %q", k, got, err, want)
	}
}
