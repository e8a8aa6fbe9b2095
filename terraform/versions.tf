# Terraform and provider pins. Only hashicorp/aws: the build machines serve
# it from a local filesystem mirror (5.100.x) and no other provider exists
# there, which is also why the bucket suffix comes from the account id
# rather than from the random provider.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.90"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = var.project
      ManagedBy = "terraform"
    }
  }
}
