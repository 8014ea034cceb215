package objectstore

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/openvpc/openvpc/policy"
)

// servePolicy answers PutBucketPolicy, GetBucketPolicy and
// DeleteBucketPolicy, which gofakes3 does not implement.
func (s *Store) servePolicy(w http.ResponseWriter, r *http.Request, bucket string) {
	ok, err := s.backend.BucketExists(bucket)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	if !ok {
		writeError(w, r, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist")
		return
	}
	switch r.Method {
	case http.MethodPut:
		doc, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "IncompleteBody", err.Error())
			return
		}
		p, err := policy.Parse(doc)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "MalformedPolicy", err.Error())
			return
		}
		if err := s.setPolicy(bucket, doc, p); err != nil {
			writeError(w, r, http.StatusInternalServerError, "InternalError", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		if err := s.dropPolicy(bucket); err != nil {
			writeError(w, r, http.StatusInternalServerError, "InternalError", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		s.mu.RLock()
		bp, ok := s.policies[bucket]
		s.mu.RUnlock()
		if !ok {
			writeError(w, r, http.StatusNotFound, "NoSuchBucketPolicy", "The bucket policy does not exist")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(bp.doc)
	}
}

func (s *Store) policyFile(bucket string) string {
	return filepath.Join(s.cfg.Dir, "policies", bucket+".json")
}

// setPolicy keeps the policy; on disk first, so a crash never leaves a
// policy in force that is not stored.
func (s *Store) setPolicy(bucket string, doc []byte, p *policy.Policy) error {
	if s.cfg.Dir != "" {
		tmp := s.policyFile(bucket) + ".tmp"
		if err := os.WriteFile(tmp, doc, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, s.policyFile(bucket)); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.policies[bucket] = bucketPolicy{doc: doc, p: p}
	s.mu.Unlock()
	return nil
}

func (s *Store) dropPolicy(bucket string) error {
	s.mu.Lock()
	delete(s.policies, bucket)
	s.mu.Unlock()
	if s.cfg.Dir != "" {
		if err := os.Remove(s.policyFile(bucket)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func (s *Store) loadPolicies() error {
	files, err := filepath.Glob(filepath.Join(s.cfg.Dir, "policies", "*.json"))
	if err != nil {
		return err
	}
	for _, f := range files {
		doc, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("objectstore: %w", err)
		}
		p, err := policy.Parse(doc)
		if err != nil {
			return fmt.Errorf("objectstore: bucket policy %s: %w (fix or remove the file)", f, err)
		}
		s.policies[strings.TrimSuffix(filepath.Base(f), ".json")] = bucketPolicy{doc: doc, p: p}
	}
	return nil
}

// s3Error is S3's error document, which every S3 client parses.
type s3Error struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string
	Message   string
	Resource  string `xml:",omitempty"`
	RequestID string `xml:"RequestId"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(s3Error{Code: code, Message: msg, Resource: r.URL.Path, RequestID: "openvpc"})
}
