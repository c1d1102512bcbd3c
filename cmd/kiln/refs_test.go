package main

import (
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

// refError keeps go-containerregistry's reason and error, and never ends where a reason
// should follow.
func TestRefError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ value, want string }{
		{"0.000/", `--destination "0.000/": repository must be between 1 and 255 characters in length (that part is empty)`},
		{`""`, "--destination \"\\\"\\\"\": repository can only contain the characters `abcdefghijklmnopqrstuvwxyz0123456789_-./`"},
		{"reg/UPPER", "--destination \"reg/UPPER\": repository can only contain the characters `abcdefghijklmnopqrstuvwxyz0123456789_-./`: reg/UPPER"},
	} {
		_, perr := name.NewTag(tc.value, name.WeakValidation)
		if perr == nil {
			t.Fatalf("%q parsed", tc.value)
		}
		err := refError("--destination", tc.value, perr)
		if err.Error() != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.value, err, tc.want)
		}
		if !errors.Is(err, perr) {
			t.Errorf("%q: the parse error is not wrapped", tc.value)
		}
	}
}
