package objectstore

import (
	"net/http"
	"strings"
)

// operation is an S3 request as policies see it.
type operation struct {
	action      string
	bucket, key string
	policy      bool // a ?policy call, which the store answers itself
}

// resource is the request's ARN: the bucket's for bucket calls, the
// object's for object calls.
func (o operation) resource() string {
	switch {
	case o.bucket == "":
		return "arn:aws:s3:::*"
	case o.key == "":
		return "arn:aws:s3:::" + o.bucket
	}
	return "arn:aws:s3:::" + o.bucket + "/" + o.key
}

// classify names the S3 action of a path-style request, as AWS's
// policy reference names them.
func classify(r *http.Request) operation {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	o := operation{bucket: bucket, key: key}
	q := r.URL.Query()
	has := func(k string) bool { _, ok := q[k]; return ok }
	m := r.Method
	switch {
	case bucket == "":
		o.action = "s3:ListAllMyBuckets"
	case key == "" && has("policy"):
		o.policy = true
		o.action = map[string]string{http.MethodPut: "s3:PutBucketPolicy", http.MethodDelete: "s3:DeleteBucketPolicy"}[m]
		if o.action == "" {
			o.action = "s3:GetBucketPolicy"
		}
	case has("uploadId"):
		switch m {
		case http.MethodDelete:
			o.action = "s3:AbortMultipartUpload"
		case http.MethodGet:
			o.action = "s3:ListMultipartUploadParts"
		default:
			o.action = "s3:PutObject" // UploadPart, CompleteMultipartUpload
		}
	case has("uploads"):
		if m == http.MethodGet {
			o.action = "s3:ListBucketMultipartUploads"
		} else {
			o.action = "s3:PutObject" // CreateMultipartUpload
		}
	case key == "" && has("versioning"):
		o.action = "s3:GetBucketVersioning"
		if m == http.MethodPut {
			o.action = "s3:PutBucketVersioning"
		}
	case key == "" && has("versions"):
		o.action = "s3:ListBucketVersions"
	case key == "" && has("location"):
		o.action = "s3:GetBucketLocation"
	case key == "":
		switch m {
		case http.MethodPut:
			o.action = "s3:CreateBucket"
		case http.MethodDelete:
			o.action = "s3:DeleteBucket"
		case http.MethodPost:
			o.action = "s3:DeleteObject" // DeleteObjects (?delete) and browser uploads write or delete objects
			if !has("delete") {
				o.action = "s3:PutObject"
			}
		default:
			o.action = "s3:ListBucket" // GET (list) and HEAD
		}
	default:
		switch m {
		case http.MethodPut:
			o.action = "s3:PutObject"
		case http.MethodDelete:
			o.action = "s3:DeleteObject"
		default:
			o.action = "s3:GetObject" // GET and HEAD
		}
	}
	return o
}
