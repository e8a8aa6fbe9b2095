# What `openpay tf apply` writes to .openpay/outputs.json; openpay's config
# reads bucket, region and role_name from there, and the doctor connects to
# ssh_user@public_ip.

output "bucket" {
  description = "The raw and metadata zone bucket."
  value       = aws_s3_bucket.lake.bucket
}

output "region" {
  description = "Region of the stack."
  value       = var.region
}

output "instance_id" {
  description = "The ingestion host."
  value       = aws_instance.host.id
}

output "public_ip" {
  description = "Public IPv4 address of the host (SSH from ssh_allowed_cidrs only)."
  value       = aws_instance.host.public_ip
}

output "security_group_id" {
  description = "Security group of the host (checked by net.ssh-allowlist)."
  value       = aws_security_group.host.id
}

output "role_name" {
  description = "Instance role name (`openpay iam drift --role`)."
  value       = aws_iam_role.runner.name
}

output "role_arn" {
  description = "Instance role ARN."
  value       = aws_iam_role.runner.arn
}

output "ssh_user" {
  description = "Login user of the AMI."
  value       = local.ssh_user
}
