package objectstore

import (
	"net/http"
	"net/url"
	"strings"
)

// operation is an S3 request as policies see it.
type operation struct {
	action      string
	bucket, key string
	policy      bool // a ?policy call, which the store answers itself
	// bucketLevel: the action is on the bucket (its ARN is the resource)
	// even though the path names a key, as gofakes3 ignores the key for
	// ?versioning, ?versions and GET ?uploads.
	bucketLevel bool
	// deleteMulti: POST ?delete, authorized per key from its body.
	deleteMulti bool
	// refuse, when set, is the S3 error code the store answers with
	// instead of serving (requests it cannot authorize faithfully).
	refuse, refuseMsg string
}

// resource is the request's ARN: the bucket's for bucket calls, the
// object's for object calls.
func (o operation) resource() string {
	switch {
	case o.bucket == "":
		return "arn:aws:s3:::*"
	case o.key == "" || o.bucketLevel:
		return "arn:aws:s3:::" + o.bucket
	}
	return "arn:aws:s3:::" + o.bucket + "/" + o.key
}

// classify names the S3 action of a path-style request, as AWS's policy
// reference names them. It follows gofakes3's routing (routing.go
// routeBase) test for test and in the same order, so the action a policy
// is asked about is the one gofakes3 then runs; TestClassifyMatchesGofakes3
// checks each route against what gofakes3 does.
func classify(r *http.Request) operation {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	o := operation{bucket: bucket, key: key}
	q := r.URL.Query()
	has := func(k string) bool { _, ok := q[k]; return ok }
	m := r.Method
	switch {
	case bucket != "" && key == "" && has("policy"):
		// Answered by the store itself (bucketpolicy.go), never by gofakes3.
		o.policy = true
		o.action = map[string]string{http.MethodPut: "s3:PutBucketPolicy", http.MethodDelete: "s3:DeleteBucketPolicy"}[m]
		if o.action == "" {
			o.action = "s3:GetBucketPolicy"
		}
	case q.Get("uploadId") != "": // gofakes3: routeMultipartUpload
		switch m {
		case http.MethodDelete:
			o.action = "s3:AbortMultipartUpload"
		case http.MethodGet:
			o.action = "s3:ListMultipartUploadParts"
		default:
			o.action = "s3:PutObject" // UploadPart, CompleteMultipartUpload
		}
	case has("uploads"): // routeMultipartUploadBase
		if m == http.MethodGet {
			o.action, o.bucketLevel = "s3:ListBucketMultipartUploads", true
		} else {
			o.action = "s3:PutObject" // CreateMultipartUpload
		}
	case has("versioning"): // routeVersioning: on the bucket, whatever the key
		o.action, o.bucketLevel = "s3:GetBucketVersioning", true
		if m == http.MethodPut {
			o.action = "s3:PutBucketVersioning"
		}
	case has("versions"): // routeVersions
		o.action, o.bucketLevel = "s3:ListBucketVersions", true
	case versionID(q) != "": // routeVersion
		// AWS names these *Version; a policy meaning every read says
		// s3:GetObject* (as on AWS).
		switch m {
		case http.MethodDelete:
			o.action = "s3:DeleteObjectVersion"
		default:
			o.action = "s3:GetObjectVersion"
		}
	case bucket != "" && key != "": // routeObject
		switch m {
		case http.MethodPut:
			o.action = "s3:PutObject" // and CopyObject: the source is checked too (copySource)
		case http.MethodDelete:
			o.action = "s3:DeleteObject"
		default:
			o.action = "s3:GetObject" // GET and HEAD
		}
	case bucket != "": // routeBucket
		switch m {
		case http.MethodPut:
			o.action = "s3:CreateBucket"
		case http.MethodDelete:
			o.action = "s3:DeleteBucket"
		case http.MethodPost:
			if has("delete") {
				o.action, o.deleteMulti = "s3:DeleteObject", true
			} else {
				// A browser (form) upload names its key in the body; the
				// store does not offer them rather than authorize the
				// wrong resource.
				o.action = "s3:PutObject"
				o.refuse, o.refuseMsg = "NotImplemented", "POST (browser form) uploads are not supported by this store; use PUT /bucket/key"
			}
		default:
			if m == http.MethodGet && has("location") {
				o.action = "s3:GetBucketLocation"
			} else {
				o.action = "s3:ListBucket" // GET (list) and HEAD
			}
		}
	default:
		o.action = "s3:ListAllMyBuckets"
	}
	return o
}

// versionID is gofakes3's versionFromQuery: "" and "null" are no version.
func versionID(q url.Values) string {
	if v := q["versionId"]; len(v) > 0 && v[0] != "" && v[0] != "null" {
		return v[0]
	}
	return ""
}

// copySource is the bucket and key a CopyObject reads (the
// X-Amz-Copy-Source header), parsed exactly as gofakes3's copyObject
// parses it, so the store authorizes the object gofakes3 will read. ok is
// false when gofakes3 would refuse the header anyway.
func copySource(h http.Header) (bucket, key string, present, ok bool) {
	vals := h["X-Amz-Copy-Source"]
	if len(vals) == 0 {
		return "", "", false, false
	}
	source := vals[0]
	parts := strings.SplitN(strings.TrimPrefix(source, "/"), "/", 2)
	decoded := false
	if len(parts) < 2 {
		d, err := url.QueryUnescape(source)
		if err != nil {
			return "", "", true, false
		}
		parts = strings.SplitN(strings.TrimPrefix(d, "/"), "/", 2)
		decoded = true
	}
	if len(parts) < 2 {
		return "", "", true, false
	}
	bucket, key = parts[0], strings.SplitN(parts[1], "?", 2)[0]
	if !decoded {
		k, err := url.QueryUnescape(key)
		if err != nil {
			return "", "", true, false
		}
		key = k
	}
	return bucket, key, true, true
}
