package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestPrune(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []PruneOption
		want []string // tags or "dangling" of the images removed
	}{
		{name: "dangling only", want: []string{"dangling"}},
		{name: "all", opts: []PruneOption{PruneAll()}, want: []string{"dangling", "labelled", "plain"}},
		{
			name: "all with a label filter",
			opts: []PruneOption{PruneAll(), PruneMatching(func(im Image) bool { return im.Labels["x"] == "1" })},
			want: []string{"labelled"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := openStore(t, t.TempDir())
			ids := map[string]v1.Hash{
				"dangling": put(t, s, testImage(t, time.Unix(100, 0), nil)),
				"labelled": put(t, s, testImage(t, time.Unix(200, 0), map[string]string{"x": "1"}), "labelled"),
				"plain":    put(t, s, testImage(t, time.Unix(300, 0), nil), "plain"),
			}
			rep, err := s.Prune(context.Background(), tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			var deleted []string
			for _, r := range rep.Records {
				if r.Deleted == "" {
					continue
				}
				for k, id := range ids {
					if id.String() == r.Deleted {
						deleted = append(deleted, k)
					}
				}
			}
			if diff := cmp.Diff(tt.want, sortedCopy(deleted)); diff != "" {
				t.Errorf("pruned (-want +got):\n%s", diff)
			}
			if rep.SpaceReclaimed <= 0 {
				t.Errorf("SpaceReclaimed = %d", rep.SpaceReclaimed)
			}
			list, _ := s.List()
			if len(list) != len(ids)-len(tt.want) {
				t.Errorf("%d images left, want %d", len(list), len(ids)-len(tt.want))
			}
		})
	}
}
