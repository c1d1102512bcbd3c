package credentials

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"golang.org/x/oauth2"
)

// scrub words a cloud lookup's error for a log line without the secrets it may carry.
// The helpers' errors are not written with logs in mind: an OAuth token endpoint's
// refusal quotes the response body (which some servers fill with the request), an AWS
// error message can echo what was sent, and URLs can carry tokens in their query or
// user info. So:
//
//   - an OAuth refusal is reduced to its status and error code;
//   - URLs lose their user info and query;
//   - the value of every secret-looking environment variable (a name with SECRET,
//     TOKEN, PASSWORD or PASSWD, such as AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
//     AZURE_CLIENT_SECRET, AZURE_FEDERATED_TOKEN) is replaced wherever it appears.
func scrub(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := "oauth2 token endpoint refused"
		if re.Response != nil {
			msg += ": " + re.Response.Status
		}
		if re.ErrorCode != "" {
			msg += fmt.Sprintf(" (%s)", re.ErrorCode)
		}
		return msg
	}
	msg := err.Error()
	if i := strings.Index(msg, "\nResponse:"); i >= 0 {
		msg = msg[:i]
	}
	msg = urlPattern.ReplaceAllStringFunc(msg, redactURL)
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if len(value) >= 6 && secretEnvName.MatchString(name) {
			msg = strings.ReplaceAll(msg, value, "REDACTED")
		}
	}
	return msg
}

var (
	urlPattern    = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)
	secretEnvName = regexp.MustCompile(`(?i)(SECRET|TOKEN|PASSWORD|PASSWD)`)
)

// redactURL drops what in a URL can hold a credential: user info and query.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "REDACTED-URL"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.String()
}
