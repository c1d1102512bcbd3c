package credentials

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/awslabs/amazon-ecr-credential-helper/ecr-login/api"
	"github.com/google/go-containerregistry/pkg/authn"
)

// ownsECR reports whether host is an ECR private registry in any AWS partition
// (<account>.dkr.ecr.<region>.amazonaws.com, .com.cn, FIPS and dual-stack names) or
// ECR Public. The ECR helper's own parser decides, so kiln claims exactly the hosts
// the helper can get a token for.
func ownsECR(host string) bool {
	_, err := api.ExtractRegistry(host)
	return err == nil
}

// ecrCreds is the ECR keychain of one Cloud value. It drives the ECR credential
// helper's client rather than the helper itself (ecr.NewECRHelper): the helper
// panics when the AWS configuration cannot be loaded, logs every failure at error
// level on logrus's global logger, and turns every error into "credentials not
// found", which would leave the debug note nothing to say.
type ecrCreds struct {
	mu      sync.Mutex
	clients map[string]api.Client // by region (and FIPS); each caches its AWS credentials
}

func newECR() *ecrCreds { return &ecrCreds{clients: map[string]api.Client{}} }

func (e *ecrCreds) provider() provider {
	return provider{name: "ecr", owns: ownsECR, fetch: e.fetch}
}

// fetch exchanges the AWS credentials for a registry token. The helper's client
// keeps tokens until they expire in its file cache (~/.ecr/cache.json, or
// AWS_ECR_CACHE_DIR; AWS_ECR_DISABLE_CACHE turns it off), as docker-credential-ecr-login
// does.
func (e *ecrCreds) fetch(ctx context.Context, registry string) (authn.Authenticator, error) {
	reg, err := api.ExtractRegistry(registry)
	if err != nil {
		return nil, err
	}
	client, err := e.client(ctx, reg)
	if err != nil {
		return nil, err
	}
	auth, err := client.GetCredentials(registry)
	if err != nil {
		return nil, err
	}
	return authn.FromConfig(authn.AuthConfig{Username: auth.Username, Password: auth.Password}), nil
}

// client returns the ECR client for reg's region, loading the AWS configuration
// (environment, shared files, endpoint overrides such as AWS_ENDPOINT_URL_ECR) once.
func (e *ecrCreds) client(ctx context.Context, reg *api.Registry) (api.Client, error) {
	region := reg.Region
	if reg.Service == api.ServiceECRPublic {
		region = "us-east-1" // the only region serving the ECR Public API
	}
	key := region
	loadOpts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if reg.FIPS {
		key += "/fips"
		loadOpts = append(loadOpts, config.WithUseFIPSEndpoint(aws.FIPSEndpointStateEnabled))
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.clients[key]; ok {
		return c, nil
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	c := api.DefaultClientFactory{}.NewClientWithOptions(api.Options{Config: cfg})
	e.clients[key] = c
	return c, nil
}
