# Inputs of the stack. Every variable that can make the stack unsafe is
# validated here, so a bad value stops `terraform plan` before any API call.

variable "project" {
  description = "Name prefix for every resource and the Project tag."
  type        = string
  default     = "openpay"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.project))
    error_message = "project must be 2-31 characters: lowercase letters, digits and '-', starting with a letter."
  }
}

variable "region" {
  description = "AWS region of the whole stack (the bucket name includes it)."
  type        = string
  default     = "us-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as us-west-1."
  }
}

variable "ssh_allowed_cidrs" {
  description = "CIDRs allowed to reach the host on TCP 22, e.g. [\"197.210.77.0/24\"] (`openpay cidr '197.210.77.*'` converts a pattern). Never the whole internet."
  type        = list(string)

  validation {
    condition     = length(var.ssh_allowed_cidrs) > 0
    error_message = "ssh_allowed_cidrs must name at least one CIDR; use `openpay cidr` to turn a pattern like 197.210.77.* into one."
  }

  validation {
    condition     = alltrue([for c in var.ssh_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "ssh_allowed_cidrs: every entry must be a CIDR such as 197.210.77.0/24 or 2001:db8::/48 (a bare address needs /32 or /128)."
  }

  validation {
    # cidrhost(c, 0) is the network address; it equals the given address
    # only when no host bits are set (197.210.77.5/24 is refused).
    condition     = alltrue([for c in var.ssh_allowed_cidrs : try(format("%s/%s", cidrhost(c, 0), split("/", c)[1]) == c, false)])
    error_message = "ssh_allowed_cidrs: every entry must be a canonical network address with no host bits set, e.g. 197.210.77.0/24 rather than 197.210.77.5/24."
  }

  validation {
    condition     = alltrue([for c in var.ssh_allowed_cidrs : try(tonumber(split("/", c)[1]) > 0, false)])
    error_message = "ssh_allowed_cidrs must never contain 0.0.0.0/0 or ::/0: SSH open to the internet is refused; list your office or VPN range instead."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the ingestion host."
  type        = string
  default     = "t3.medium"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*[0-9][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like t3.medium."
  }
}

variable "root_volume_gib" {
  description = "Root volume size in GiB: a program year of General Payments is 6-9 GB as CSV, kept while it uploads, plus Docker images."
  type        = number
  default     = 50

  validation {
    condition     = var.root_volume_gib >= 30 && var.root_volume_gib <= 2048 && floor(var.root_volume_gib) == var.root_volume_gib
    error_message = "root_volume_gib must be a whole number between 30 and 2048."
  }
}

variable "ami_id" {
  description = "AMI of the host; null means the latest Amazon Linux 2023 from the public SSM parameter."
  type        = string
  default     = null

  validation {
    condition     = var.ami_id == null || can(regex("^ami-[0-9a-f]{8,17}$", var.ami_id))
    error_message = "ami_id must be an AMI id such as ami-0123456789abcdef0, or null for the latest Amazon Linux 2023."
  }
}

variable "ami_ssm_parameter" {
  description = "Public SSM parameter that names the latest Amazon Linux 2023 AMI (used when ami_id is null)."
  type        = string
  default     = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

variable "public_key" {
  description = "OpenSSH public key installed for ec2-user (the content of ~/.ssh/id_ed25519.pub)."
  type        = string

  validation {
    condition     = can(regex("^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*( .*)?$", trimspace(var.public_key)))
    error_message = "public_key must be one OpenSSH public key line (ssh-ed25519 AAAA... or ssh-rsa AAAA...), not a private key or a file path."
  }
}

variable "bucket_suffix" {
  description = "Last part of the bucket name openpayments-dezoomcamp2026-<region>-<suffix>; null means the AWS account id."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_suffix == null || can(regex("^[a-z0-9][a-z0-9-]{0,20}[a-z0-9]$", var.bucket_suffix))
    error_message = "bucket_suffix must be 2-22 characters of lowercase letters, digits and '-', not starting or ending with '-'."
  }
}

variable "repo_url" {
  description = "Git URL of the openpay repository that the bootstrap clones on the host."
  type        = string
  default     = "https://github.com/openpay/openpay.git"

  validation {
    condition     = can(regex("^(https://|git@)[^\\s'\"`$]+$", var.repo_url))
    error_message = "repo_url must be an https:// or git@ URL without spaces or quotes."
  }
}

variable "role_name" {
  description = "Name of the instance role (openpay's [aws] role_name)."
  type        = string
  default     = "openpay-runner"

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.role_name))
    error_message = "role_name must be 1-64 characters of letters, digits and +=,.@_-."
  }
}

variable "vpc_cidr" {
  description = "CIDR of the stack's own VPC."
  type        = string
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && !strcontains(var.vpc_cidr, ":")
    error_message = "vpc_cidr must be an IPv4 CIDR such as 10.42.0.0/16."
  }
}

variable "detailed_monitoring" {
  description = "One-minute CloudWatch metrics for the host (local AWS emulators without MonitorInstances pass false)."
  type        = bool
  default     = true
}
