# The instance role. Its only permissions are the ones in
# policies/runner.json.tftpl, which `openpay iam drift` renders too, so the
# repository holds one source of truth for the live role.

data "aws_iam_policy_document" "ec2_assume" {
  statement {
    sid     = "Ec2AssumeRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "runner" {
  name                 = var.role_name
  description          = "openpay ingestion host: read/write raw/ and metadata/ of ${local.bucket_name}"
  assume_role_policy   = data.aws_iam_policy_document.ec2_assume.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy" "runner" {
  name = "${var.project}-raw-zone"
  role = aws_iam_role.runner.id
  policy = templatefile("${path.module}/policies/runner.json.tftpl", {
    bucket = aws_s3_bucket.lake.bucket
  })
}

resource "aws_iam_instance_profile" "runner" {
  name = var.role_name
  role = aws_iam_role.runner.name
}
