# The raw and metadata zones: one private, encrypted, versioned bucket.

data "aws_caller_identity" "current" {}

locals {
  bucket_suffix = var.bucket_suffix != null ? var.bucket_suffix : data.aws_caller_identity.current.account_id
  bucket_name   = "openpayments-dezoomcamp2026-${var.region}-${local.bucket_suffix}"
}

resource "aws_s3_bucket" "lake" {
  #checkov:skip=CKV_AWS_18:Server access logs need a second, separately governed log bucket; CloudTrail data events are the audit trail for this bucket.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles storage for public data that can be downloaded again from CMS.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications exists; openpay writes a manifest per run instead.
  bucket = local.bucket_name

  tags = {
    Name = local.bucket_name
  }
}

resource "aws_s3_bucket_public_access_block" "lake" {
  bucket = aws_s3_bucket.lake.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "lake" {
  bucket = aws_s3_bucket.lake.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# SSE-KMS with the AWS-managed aws/s3 key: its key policy already lets any
# principal that may use this bucket encrypt through S3, so the runner
# policy stays S3-only. Bucket keys keep the KMS request count down.
resource "aws_s3_bucket_server_side_encryption_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "aws:kms"
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "lake" {
  bucket = aws_s3_bucket.lake.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "lake" {
  bucket = aws_s3_bucket.lake.id

  # Multipart uploads of 6-9 GB files that die half way leave invisible,
  # billed parts; abort them after a week.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Versioning keeps overwritten objects; keep old versions for 90 days.
  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 90
    }
  }

  depends_on = [aws_s3_bucket_versioning.lake]
}

# Refuse any request that is not over TLS.
resource "aws_s3_bucket_policy" "lake" {
  bucket = aws_s3_bucket.lake.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.lake.arn, "${aws_s3_bucket.lake.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })

  depends_on = [aws_s3_bucket_public_access_block.lake]
}
