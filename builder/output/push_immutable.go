package output

import "strings"

// immutableTagMessages are what registries answer a push that would move an
// immutable tag. None has an error code of its own (ECR says TAG_INVALID, Docker Hub
// DENIED, Harbor PRECONDITION), so the message is all there is to recognise.
var immutableTagMessages = []string{
	// ECR (docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html),
	// in its older and newer wording.
	"cannot be overwritten because the repository is immutable",
	"cannot be overwritten because the tag is immutable",
	// Artifact Registry (cloud.google.com/artifact-registry/docs/docker/troubleshoot#push).
	"the repository has enabled tag immutability",
	// Docker Hub's immutable tags.
	"cannot be updated due to immutability settings",
	// Harbor's tag immutability rules.
	"configured as immutable",
}

// isImmutableTagError reports whether a push failed because the tag is immutable.
func isImmutableTagError(err error) bool {
	msg := strings.ToLower(err.Error())
	for _, m := range immutableTagMessages {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}
