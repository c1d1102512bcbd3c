package main

import "testing"

func TestAllowInsecure(t *testing.T) {
	for _, tc := range []struct {
		values  []string
		want    bool
		wantErr bool
	}{
		{values: nil},
		{values: []string{"security.insecure"}, want: true},
		{values: []string{"network.host"}},
		{values: []string{"network.host,security.insecure"}, want: true},
		{values: []string{"network.host", "security.insecure"}, want: true},
		{values: []string{"device"}, wantErr: true},
	} {
		got, err := allowInsecure(tc.values)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("allowInsecure(%q) = %v, %v; want %v, error %v", tc.values, got, err, tc.want, tc.wantErr)
		}
	}
}
