package credentials

import (
	"testing"
)

func TestCloudHostOwnership(t *testing.T) {
	t.Parallel()
	tests := []struct {
		registry string
		want     string // the owning provider; "" = none
	}{
		{"gcr.io", "google"},
		{"eu.gcr.io", "google"},
		{"GCR.IO", "google"},
		{"gcr.io:443", "google"},
		{"us-docker.pkg.dev", "google"},
		{"europe-west1-docker.pkg.dev", "google"},
		{"gcr.io.example.com", ""},
		{"notgcr.io", ""},
		{"pkg.dev.example.com", ""},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com", "ecr"},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "ecr"},
		{"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "ecr"},
		{"123456789012.dkr-ecr.us-east-1.on.aws", "ecr"},
		{"public.ecr.aws", "ecr"},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com.example.com", ""},
		{"12345.dkr.ecr.us-east-1.amazonaws.com", ""},
		{"dkr.ecr.us-east-1.amazonaws.com", ""},
		{"kiln.azurecr.io", "acr"},
		{"kiln.azurecr.cn", "acr"},
		{"kiln.azurecr.us", "acr"},
		{"kiln.azurecr.de", "acr"},
		{"kiln.eastus.data.azurecr.io", "acr"},
		{"kiln.azurecr.io.example.com", ""},
		{"azurecr.io", ""},
		{"mcr.microsoft.com", ""},
		{"127.0.0.1:5000", ""},
		{"localhost:5000", ""},
		{"[::1]:5000", ""},
		{"index.docker.io", ""},
		{"ghcr.io", ""},
		{"quay.io", ""},
	}
	c := newCloud(newOptions(nil))
	for _, tt := range tests {
		t.Run(tt.registry, func(t *testing.T) {
			t.Parallel()
			p, ok := c.owner(tt.registry)
			got := ""
			if ok {
				got = p.name
			}
			if got != tt.want {
				t.Errorf("owner(%q) = %q, want %q", tt.registry, got, tt.want)
			}
		})
	}
}
